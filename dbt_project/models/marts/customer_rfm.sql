{{
    config(
        materialized='incremental',
        unique_key=['as_of_month', 'customer_id'],
        on_schema_change='fail',
        full_refresh=false,
        pre_hook="{{ delete_as_of_month_rows(build_month()) }}",
        **monthly_snapshot_storage()
    )
}}

-- Monthly RFM snapshot: recency, frequency and monetary value of every customer with at least one
-- order (sale) by the end of the as-of month, scored 1..5 by rank among those customers (ties share a
-- score; higher = better) and mapped to a named segment on (R, F). Monetary is net of returns.
{%- set as_of_month = build_month() %}
{%- set month_end = as_of_month_end(as_of_month) %}

with

activity as (

    select * from {{ ref('int_customer_activity') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

rfm_values as (

    select
        customer_id,
        {{ dbt.datediff('last_order_date', month_end, 'day') | trim }} as recency_days,
        lifetime_orders as frequency,
        -- ranked on whole cents over orders: equal averages are equal numbers on any engine, whatever the
        -- order in which the revenue was summed
        {{ fraction('round(lifetime_net_revenue * 100)', 'lifetime_orders') }} as monetary_cents

    from activity

    where lifetime_orders > 0

),

rfm_scores as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary_cents / 100 as monetary,
        -- the most recent buyers (fewest days) get 5
        {{ rank_score('recency_days', direction='desc') }} as r_score,
        {{ rank_score('frequency') }} as f_score,
        {{ rank_score('monetary_cents') }} as m_score

    from rfm_values

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        rfm_scores.customer_id,
        rfm_scores.recency_days,
        rfm_scores.frequency,
        rfm_scores.monetary,
        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_segments.rfm_segment

    from rfm_scores
    left join rfm_segments
        on
            rfm_scores.r_score between rfm_segments.r_min and rfm_segments.r_max
            and rfm_scores.f_score between rfm_segments.f_min and rfm_segments.f_max

)

select * from final
