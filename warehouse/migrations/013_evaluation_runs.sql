-- Write, audit, publish (see schema.sql): readers now see only published evaluation runs. Results a file already
-- holds were checked when they were made (the cost rollup runs only after the blocking check passes), so each
-- variant with a cost rollup gets one evaluation run, 'migrated-<variant>', which apply_schema then publishes
-- from the tables as they are. The tables themselves come from schema.sql.
INSERT INTO evaluation_runs (run_id, variant, evaluated_at, status, run_trigger, config_hash, price_date)
SELECT 'migrated-' || c.variant, c.variant, c.computed_at, 'published', 'migrated',
       (SELECT any_value(s.config_hash) FROM benchmark_scores s WHERE s.variant = c.variant), c.price_date
FROM cost_rollup c
WHERE NOT EXISTS (SELECT 1 FROM evaluation_runs r WHERE r.variant = c.variant);
