"""Knowledge bases: documents, chunks, embeddings and retrieval."""
