"""The model registry, the reference zoo, the fast nets and their whitened stem."""
