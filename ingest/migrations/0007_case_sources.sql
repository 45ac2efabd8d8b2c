-- processlens analytics: which source systems each case has events from, as a bit set over
-- source_id (bit i = source_id i, for the ids below 64), so that the dashboard's "cases with an
-- event from these systems" reads an_cases instead of every event. Filled here for the cases
-- already summarised; refreshes keep it (a case's bits only ever gain members, so OR-ing is exact).
ALTER TABLE an_cases ADD COLUMN source_mask UBIGINT;
UPDATE an_cases SET source_mask = m.mask
FROM (SELECT case_key, bit_or(CASE WHEN source_id < 64 THEN (1::UBIGINT << source_id::UBIGINT) ELSE 0::UBIGINT END) AS mask
      FROM events GROUP BY case_key) m
WHERE an_cases.case_key = m.case_key;
