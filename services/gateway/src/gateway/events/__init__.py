"""Live events: one Redis subscription per process, fanned out over SSE and WebSocket."""
