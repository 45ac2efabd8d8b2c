-- processlens analytics: the histogram bucket of a zero duration moves below every positive one
-- (analytics.queries.bucket_sql). It was -1, which is also the bucket of durations just under a
-- second, so a median over zero and sub-second durations could be read from the wrong bucket.
-- The edge statistics are marked stale: readers compute the DFG from the pairs until the next
-- refresh rebuilds an_edge_stats, an_edge_hist and an_edge_vals with the new buckets.
DELETE FROM an_state WHERE key = 'an_edge_stats';
