"""Publishing: the metadata API and gallery holders look at, and the pusher that announces new
versions on chain (ERC-4906 or tokenURI updates)."""
