"""The knowledge base: parsing, chunking, embedding, ingestion and hybrid search over shared files."""
