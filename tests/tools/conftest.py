"""The tooling's own tests (`make test-tools`): the local gateway and its pool of execution environments, the
loaders, the work meter, the benchmark and the cost model. The product's tiers (`make test-unit`,
`test-integration`, `test-e2e`) leave them out; `make test` runs them too, on the same test services."""
