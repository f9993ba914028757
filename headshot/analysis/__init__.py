"""Face analysis, likeness and artifact metrics, generation studies, reports."""
