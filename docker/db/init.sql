-- Run once when the compose store volume is created. zdg's own migrations (nodes/store/schema.py)
-- create the tables on first use; this only makes sure pgvector is there.
CREATE EXTENSION IF NOT EXISTS vector;
