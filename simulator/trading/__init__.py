"""Trading on the simulator: Bybit v5 auth, a matching engine and ledger, and the private WebSockets."""
