"""OpenAI's legacy text completions, ``POST /v1/completions``, as vLLM serves them."""
