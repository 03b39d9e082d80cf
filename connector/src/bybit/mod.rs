//! Bybit v5 public market data: wire messages, the order book, the WebSocket and REST.

pub mod book;
pub mod msg;
pub mod rest;
pub mod stream;
