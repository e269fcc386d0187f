-- The pyramid tiers, in tier_rank order, must tile the share interval (0, 1] without gap or overlap:
-- the first starts at 0, each starts where the previous ends, the last ends at 1, none is empty.
-- Returns the offending tiers.

with

pyramid_tiers as (

    select * from {{ ref('pyramid_tiers') }}

),

ordered as (

    select
        tier,
        tier_rank,
        min_share,
        max_share,
        lag(max_share) over (order by tier_rank) as previous_max_share,
        row_number() over (order by tier_rank) as position_from_top,
        row_number() over (order by tier_rank desc) as position_from_bottom

    from pyramid_tiers

),

final as (

    select * from ordered
    where
        min_share >= max_share
        or (position_from_top = 1 and min_share <> 0)
        or (position_from_top > 1 and min_share <> previous_max_share)
        or (position_from_bottom = 1 and max_share <> 1)

)

select * from final
