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

-- Monthly customer value snapshot: 12-month revenue, margin, cost to serve and profit of every customer
-- with at least one order (sale) by the end of the as-of month, and the customer's tier in the
-- customer pyramid. The 12 months are the 12 calendar months ending at month_end; money is net of
-- returns. The pyramid ranks profit; when profit is not known for every ranked customer (no product
-- costs, e.g. a plain transaction log) it ranks revenue instead, and tier_basis says which.
{%- set as_of_month = build_month() %}

with

activity as (

    select * from {{ ref('int_customer_activity') }}

),

cost_to_serve as (

    select * from {{ ref('cost_to_serve') }}

),

pyramid_tiers as (

    select * from {{ ref('pyramid_tiers') }}

),

unit_costs as (

    select
        max(case when cost_item = 'per_order' then amount end) as cost_per_order,
        max(case when cost_item = 'per_contact' then amount end) as cost_per_contact

    from cost_to_serve

),

customer_profit as (

    select
        activity.customer_id,
        activity.net_revenue_12m as revenue_12m,
        activity.margin_12m,
        activity.orders_12m,
        activity.contacts_12m,
        activity.orders_12m * unit_costs.cost_per_order
        + activity.contacts_12m * unit_costs.cost_per_contact as cost_to_serve_12m

    from activity
    cross join unit_costs

    where activity.lifetime_orders > 0

),

with_basis as (

    select
        *,
        margin_12m - cost_to_serve_12m as profit_12m,
        -- one basis for the whole ranking: profit if every customer's profit is known, else revenue
        case
            when count(*) over () = count(margin_12m) over () then 'profit'
            else 'revenue'
        end as tier_basis

    from customer_profit

),

ranked as (

    select
        *,
        -- share of customers whose value is at least this customer's (ties share the share)
        cume_dist() over (
            order by case when tier_basis = 'profit' then profit_12m else revenue_12m end desc
        ) as tier_rank_share

    from with_basis

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        ranked.customer_id,
        ranked.revenue_12m,
        -- without margin data for everyone, no margin or profit at all: a partial view would mislead
        case when ranked.tier_basis = 'profit' then ranked.margin_12m end as margin_12m,
        ranked.orders_12m,
        ranked.contacts_12m,
        ranked.cost_to_serve_12m,
        case when ranked.tier_basis = 'profit' then ranked.profit_12m end as profit_12m,
        case when ranked.tier_basis = 'profit' then ranked.tier_rank_share end as profit_rank_share,
        ranked.tier_rank_share,
        ranked.tier_basis,
        pyramid_tiers.tier as pyramid_tier

    from ranked
    left join pyramid_tiers
        on
            ranked.tier_rank_share > pyramid_tiers.min_share
            and ranked.tier_rank_share <= pyramid_tiers.max_share

)

select * from final
