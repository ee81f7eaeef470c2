"""Engine core: results, status tracking and scheduling. Knows nothing of storage or alerts."""
