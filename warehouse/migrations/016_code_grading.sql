-- Code benchmarks: a failing program's stderr (or why it was stopped), kept short with its grade. Rows graded
-- before are math and keep NULL.
ALTER TABLE graded_answers ADD COLUMN IF NOT EXISTS detail VARCHAR;
-- The runnable rate of a code benchmark's samples (passed or failed_tests); NULL for math.
ALTER TABLE benchmark_scores ADD COLUMN IF NOT EXISTS runnable_rate DOUBLE;
