"""vLLM's tokenizer routes: ``POST /tokenize``, ``POST /detokenize``, ``GET /version``."""
