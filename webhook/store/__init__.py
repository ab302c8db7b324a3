"""Storage: PostgreSQL (system of record), Redis (cache, locks, outbox), migrations, embedded servers."""
