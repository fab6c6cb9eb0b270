"""The measurement toolkit every local tool shares: latency statistics (``stats``), the HTTP client and its
closed-loop drivers (``http_client``), the fresh event batches that clients send (``batches``), and the
processes and their CPU (``processes``). The benchmark, the concurrency bench, the soak, the live scenario and
the loaders use these; nothing of it is deployed."""
