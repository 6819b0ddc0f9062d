"""Cross-cutting pieces every chiikipay service uses: config, database and Redis, auth, errors."""
