"""Endpoint runs: profile an OpenAI-compatible streaming server (Ollama, LM Studio, llama.cpp's server,
mlx_lm.server, vLLM, `transformers serve`) with the same engine, power sources and attribution as a local model.

- `url`: the endpoint URL and API-key-name rules (no heavy imports: the parameter table uses them);
- `sse`: a server-sent-events parser;
- `chunks`: what one streamed OpenAI chunk says (text, usage, model id, error);
- `client`: the HTTP request and its failures, each one sentence (`EndpointError`);
- `server`: the server process (found from the local port) and its CPU time and memory;
- `workload`: `EndpointWorkload`, the engine's workload for an endpoint run.
"""
