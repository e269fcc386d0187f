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

-- Monthly customer portfolio snapshot: every customer of the month's customer_value and customer_rfm
-- placed in the value x loyalty matrix, with the quadrant's recommended treatment. The rules are vars
-- (dbt_project.yml): high value = pyramid tier in portfolio_high_value_tiers; loyal = RFM recency
-- score >= portfolio_loyal_min_r_score. The quadrants and treatments are the portfolio_quadrants seed.
{%- set as_of_month = build_month() %}
{%- set high_value_tiers = var('portfolio_high_value_tiers') %}
{%- if high_value_tiers is string %}{% set high_value_tiers = [high_value_tiers] %}{% endif %}
{%- set high_value_tier_list = "'" ~ high_value_tiers | join("', '") ~ "'" %}
{%- set loyal_min_r_score = var('portfolio_loyal_min_r_score') %}

with

customer_value as (

    select * from {{ ref('customer_value') }}
    where as_of_month = {{ as_of_month_date(as_of_month) }}

),

customer_rfm as (

    select * from {{ ref('customer_rfm') }}
    where as_of_month = {{ as_of_month_date(as_of_month) }}

),

portfolio_quadrants as (

    select * from {{ ref('portfolio_quadrants') }}

),

classified as (

    select
        customer_value.customer_id,
        customer_value.pyramid_tier,
        customer_value.tier_basis,
        customer_rfm.r_score,
        customer_rfm.f_score,
        customer_rfm.rfm_segment,
        customer_value.pyramid_tier in ({{ high_value_tier_list }}) as is_high_value,
        customer_rfm.r_score >= {{ loyal_min_r_score }} as is_loyal

    from customer_value
    inner join customer_rfm
        on customer_value.customer_id = customer_rfm.customer_id

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        classified.customer_id,
        classified.pyramid_tier,
        classified.tier_basis,
        classified.r_score,
        classified.f_score,
        classified.rfm_segment,
        classified.is_high_value,
        classified.is_loyal,
        portfolio_quadrants.portfolio_quadrant,
        portfolio_quadrants.recommended_treatment,
        portfolio_quadrants.recommended_objective

    from classified
    left join portfolio_quadrants
        on
            classified.is_high_value = portfolio_quadrants.is_high_value
            and classified.is_loyal = portfolio_quadrants.is_loyal

)

select * from final
