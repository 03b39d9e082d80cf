"""hftlive's connector service: market data from hftbacktest's live bot, or a labelled mock, over HTTP and WebSocket."""
