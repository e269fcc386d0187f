{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['as_of_month', 'customer_id'],
        on_schema_change='fail',
        full_refresh=false,
        pre_hook="{{ delete_as_of_month_rows(var('as_of_month')) }}"
    )
}}

-- Monthly customer value snapshot: 12-month revenue, margin, cost to serve and profit of every customer
-- with at least one order by the end of the as-of month, and the customer's tier in the profitability
-- pyramid. The 12 months are the 12 calendar months ending at month_end.
{%- set as_of_month = var('as_of_month') %}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

contacts as (

    select * from {{ ref('stg_crm__contact_log') }}

),

cost_to_serve as (

    select * from {{ ref('cost_to_serve') }}

),

pyramid_tiers as (

    select * from {{ ref('pyramid_tiers') }}

),

customers as (

    select distinct customer_id
    from orders
    where order_date <= {{ as_of_month_end(as_of_month) }}

),

orders_12m as (

    select
        customer_id,
        sum(revenue) as revenue_12m,
        sum(margin) as margin_12m,
        count(distinct order_id) as orders_12m

    from orders

    where order_date between {{ trailing_months_start(as_of_month, 12) }}
        and {{ as_of_month_end(as_of_month) }}

    group by customer_id

),

contacts_12m as (

    select
        customer_id,
        count(*) as contacts_12m

    from contacts

    where contacted_at between {{ trailing_months_start(as_of_month, 12) }}
        and {{ as_of_month_end(as_of_month) }}

    group by customer_id

),

unit_costs as (

    select
        max(case when cost_item = 'per_order' then amount end) as cost_per_order,
        max(case when cost_item = 'per_contact' then amount end) as cost_per_contact

    from cost_to_serve

),

customer_activity as (

    select
        customers.customer_id,
        coalesce(orders_12m.revenue_12m, 0) as revenue_12m,
        coalesce(orders_12m.margin_12m, 0) as margin_12m,
        coalesce(orders_12m.orders_12m, 0) as orders_12m,
        coalesce(contacts_12m.contacts_12m, 0) as contacts_12m

    from customers
    left join orders_12m
        on customers.customer_id = orders_12m.customer_id
    left join contacts_12m
        on customers.customer_id = contacts_12m.customer_id

),

customer_profit as (

    select
        customer_activity.*,
        customer_activity.orders_12m * unit_costs.cost_per_order
            + customer_activity.contacts_12m * unit_costs.cost_per_contact as cost_to_serve_12m

    from customer_activity
    cross join unit_costs

),

ranked as (

    select
        *,
        margin_12m - cost_to_serve_12m as profit_12m,
        -- share of customers whose profit is at least this customer's (ties share the share)
        cume_dist() over (order by margin_12m - cost_to_serve_12m desc) as profit_rank_share

    from customer_profit

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        ranked.customer_id,
        ranked.revenue_12m,
        ranked.margin_12m,
        ranked.orders_12m,
        ranked.contacts_12m,
        ranked.cost_to_serve_12m,
        ranked.profit_12m,
        ranked.profit_rank_share,
        pyramid_tiers.tier as pyramid_tier

    from ranked
    left join pyramid_tiers
        on ranked.profit_rank_share > pyramid_tiers.min_share
        and ranked.profit_rank_share <= pyramid_tiers.max_share

)

select * from final
