"""On-chain announcement of new metadata versions (`dnft pusher`)."""
