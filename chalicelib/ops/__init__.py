"""Operations: keeping a stage's archive consistent, and its command line."""
