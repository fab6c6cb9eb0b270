"""The cost model: AWS prices (docs/aws-prices.json) applied to the work each request measurably does."""
