"""Face store in Postgres + pgvector: connection, migrations, writes, re-identification, maintenance."""
