-- One row per customer known at the end of the as-of month, with order history to date. A customer is
-- known from the customer snapshot or from an order: a plain transaction log (no customer master)
-- still yields every buyer, flagged in_customer_snapshot = false, with unknown consent.
{%- set as_of_month = var('as_of_month') %}

with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

order_history as (

    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(distinct order_id) as lifetime_orders,
        sum(amount) as lifetime_revenue

    from orders

    where order_date <= {{ as_of_month_end(as_of_month) }}

    group by customer_id

),

final as (

    select
        coalesce(customers.customer_id, order_history.customer_id) as customer_id,
        customers.signup_date,
        cast({{ dbt.date_trunc('month', 'order_history.first_order_date') }} as date)
            as acquisition_cohort,
        order_history.first_order_date,
        order_history.last_order_date,
        coalesce(order_history.lifetime_orders, 0) as lifetime_orders,
        coalesce(order_history.lifetime_revenue, 0) as lifetime_revenue,
        customers.email_consent,
        customers.email_hash,
        coalesce(customers.has_email, false) as has_email,
        coalesce(customers.has_phone, false) as has_phone,
        customers.customer_id is not null as in_customer_snapshot,
        {{ as_of_month_date(as_of_month) }} as as_of_month

    from customers
    full outer join order_history
        on customers.customer_id = order_history.customer_id

)

select * from final
