"""A Bybit v5 public (linear) market-data simulator: service.market's model behind Bybit's WebSocket and REST shapes."""
