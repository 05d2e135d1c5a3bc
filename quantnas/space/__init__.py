"""The search space: operations, genotypes, named spaces, network building, costs, baselines."""
