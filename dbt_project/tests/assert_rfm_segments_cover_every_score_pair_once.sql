-- Every (r_score, f_score) in 1..5 x 1..5 must map to exactly one rfm_segment.
-- Returns the score pairs that map to no segment or to several.

with

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

scores as (

    select 1 as score
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5

),

score_pairs as (

    select
        r.score as r_score,
        f.score as f_score

    from scores as r
    cross join scores as f

),

matches as (

    select
        score_pairs.r_score,
        score_pairs.f_score,
        count(rfm_segments.rfm_segment) as n_segments

    from score_pairs
    left join rfm_segments
        on
            score_pairs.r_score between rfm_segments.r_min and rfm_segments.r_max
            and score_pairs.f_score between rfm_segments.f_min and rfm_segments.f_max

    group by score_pairs.r_score, score_pairs.f_score

),

final as (

    select * from matches
    where n_segments <> 1

)

select * from final
