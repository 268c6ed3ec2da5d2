"""Demo data: the sample practice database generator and its default mapping."""
