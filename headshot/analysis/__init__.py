"""Face analysis, likeness and artifact metrics, the audit and its report."""
