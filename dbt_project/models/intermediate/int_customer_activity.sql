-- Per customer with at least one order line (sale or return) by the end of the as-of month: the order
-- and contact history the marts share, so that "frequency", "net revenue" or "last order" mean the same
-- in dim_customers, customer_rfm, customer_value and customer_features.
--
-- Orders are sales; returns are counted apart and net out of revenue. The windows are calendar months
-- ending at month_end: 1m = the as-of month, 3m and 12m the 3 and 12 months up to it.
--
-- A table rather than a view: four marts (dim_customers, customer_rfm, customer_value,
-- customer_features) and the model's own tests read it, and as a view each of them would aggregate
-- every order line again.
{{ config(materialized='table') }}
{%- set as_of_month = build_month() %}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

contacts as (

    select * from {{ ref('stg_crm__contact_log') }}

),

order_lines as (

    select
        customer_id,
        order_id,
        order_date,
        is_return,
        revenue,
        margin,
        order_date >= {{ trailing_months_start(as_of_month, 1) }} as in_last_1m,
        order_date >= {{ trailing_months_start(as_of_month, 3) }} as in_last_3m,
        order_date >= {{ trailing_months_start(as_of_month, 12) }} as in_last_12m

    from orders

    -- fct_orders holds nothing later; repeated so that the definition does not depend on it
    where order_date <= {{ as_of_month_end(as_of_month) }}

),

order_summary as (

    select
        customer_id,
        min(case when not is_return then order_date end) as first_order_date,
        max(case when not is_return then order_date end) as last_order_date,
        count(case when not is_return then order_id end) as lifetime_orders,
        count(case when is_return then order_id end) as lifetime_returns,
        coalesce(sum(case when not is_return then revenue end), 0) as lifetime_sales_revenue,
        coalesce(-sum(case when is_return then revenue end), 0) as lifetime_refunds,
        sum(revenue) as lifetime_net_revenue,
        count(case when not is_return and in_last_1m then order_id end) as orders_1m,
        count(case when not is_return and in_last_3m then order_id end) as orders_3m,
        count(case when not is_return and in_last_12m then order_id end) as orders_12m,
        count(case when is_return and in_last_12m then order_id end) as returns_12m,
        coalesce(sum(case when in_last_12m then revenue end), 0) as net_revenue_12m,
        -- a margin is known only if every line in the window has one: a partial sum would understate it
        case
            when
                count(case when in_last_12m then order_id end)
                = count(case when in_last_12m then margin end)
                then coalesce(sum(case when in_last_12m then margin end), 0)
        end as margin_12m

    from order_lines

    group by customer_id

),

contact_summary as (

    select
        customer_id,
        count(
            case when contacted_at >= {{ trailing_months_start(as_of_month, 12) }} then campaign_id end
        ) as contacts_12m,
        max(contacted_at) as last_contacted_at

    from contacts

    where contacted_at <= {{ as_of_month_end(as_of_month) }}

    group by customer_id

),

final as (

    select
        order_summary.*,
        coalesce(contact_summary.contacts_12m, 0) as contacts_12m,
        contact_summary.last_contacted_at

    from order_summary
    left join contact_summary
        on order_summary.customer_id = contact_summary.customer_id

)

select * from final
