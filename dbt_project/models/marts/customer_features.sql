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

-- Monthly point-in-time feature snapshot of every customer with at least one order (sale) by the end of
-- the as-of month, for the models of the analyse stage. Every feature is computed from data dated on or
-- before month_end and collected by the as-of month (int_customer_activity, dim_customers), so the
-- snapshot of a past month never sees what happened after it, however late it is rebuilt.
{%- set as_of_month = build_month() %}
{%- set month_end = as_of_month_end(as_of_month) %}

with

activity as (

    select * from {{ ref('int_customer_activity') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        activity.customer_id,
        {{ dbt.datediff('activity.last_order_date', month_end, 'day') | trim }} as recency_days,
        activity.lifetime_orders as frequency,
        {{ fraction('activity.lifetime_net_revenue', 'activity.lifetime_orders') }} as monetary,
        activity.lifetime_net_revenue as net_revenue_lifetime,
        activity.net_revenue_12m,
        activity.orders_1m,
        activity.orders_3m,
        activity.orders_12m,
        {{ dbt.datediff('activity.first_order_date', month_end, 'day') | trim }} as days_since_first_order,
        customers.tenure_days,
        case
            when activity.lifetime_orders > 1
                then {{ fraction(
                    dbt.datediff('activity.first_order_date', 'activity.last_order_date', 'day') | trim,
                    '(activity.lifetime_orders - 1)'
                ) }}
        end as avg_days_between_orders,
        {{ fraction('activity.lifetime_sales_revenue', 'activity.lifetime_orders') }} as avg_order_value,
        {{ fraction('activity.lifetime_returns', 'activity.lifetime_orders') }} as return_rate,
        activity.contacts_12m,
        {{ dbt.datediff('activity.last_contacted_at', month_end, 'day') | trim }} as days_since_last_contact

    from activity
    left join customers
        on activity.customer_id = customers.customer_id

    where activity.lifetime_orders > 0

)

select * from final
