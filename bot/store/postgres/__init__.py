"""The PostgreSQL + pgvector store: the same interface as SQLite's, for several replicas on one database.

Imported only when THREADBOT_DATABASE_URL is set, so the SQLite path needs no PostgreSQL packages.
"""
