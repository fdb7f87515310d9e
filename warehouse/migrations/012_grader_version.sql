-- Every graded row says which grader graded it (assets.grading.version). Rows graded before have NULL and are
-- graded again, once, by the current grader, from their stored generations.
ALTER TABLE graded_answers ADD COLUMN IF NOT EXISTS grader_version VARCHAR;
