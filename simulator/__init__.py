"""A Bybit v5 public (linear) market-data simulator: market/'s model behind Bybit's WebSocket and REST shapes."""
