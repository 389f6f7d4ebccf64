"""OpenAI's embeddings API on chatgate: `POST /v1/embeddings` (`router.py`), served by the
configured embedders (`knowledge/embedders.py`) in `service.py`; `model` is an embedder's
configured id, and `GET /v1/models` lists the embedders (`openai_compat/router.py`).

What chatgate decides where OpenAI's API leaves room (docs/api.md, "Embeddings"):
- Vectors are unit length, as the embedders make them for retrieval and as OpenAI's are.
- `dimensions` is honoured only when it equals the embedder's dimension. Neither the bundled
  model nor, as far as chatgate can know, an engine's model was trained to be cut short, and the
  embedder also serves the knowledge bases, whose vectors keep one size; anything else is 400.
- The bundled model reads each text as a passage (e5's `passage: ` prefix, as knowledge-base
  chunks are); chatgate's own `input_type: "query"` gives a search query's prefix instead.
- Usage counts the bundled model's own tokens; an engine's are chatgate's estimate.
- Token arrays (lists of ints) are refused: the embedders read text.
"""
