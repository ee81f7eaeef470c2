"""The web layer: status page, JSON API, badges, metrics. It only reads the store."""
