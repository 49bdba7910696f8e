"""Publishing: the metadata API and gallery holders look at (:mod:`publisher.api`), and the
pusher that announces new versions on chain, ERC-4906 or tokenURI updates
(:mod:`publisher.pusher`). The two run as separate daemons and share nothing but the ground:
import each from its own package."""

__all__ = ["api", "pusher"]
