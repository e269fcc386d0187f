-- One row per customer known at the end of the as-of month, with order history to date. A customer is
-- known from the customer snapshot or from an order: a plain transaction log (no customer master)
-- still yields every buyer, flagged in_customer_snapshot = false, with unknown consent (never
-- contactable). No personal data: the e-mail only as a hash, e-mail and phone only as presence flags.
{%- set as_of_month = build_month() %}
{%- set month_end = as_of_month_end(as_of_month) %}

with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

activity as (

    select * from {{ ref('int_customer_activity') }}

),

joined as (

    select
        coalesce(customers.customer_id, activity.customer_id) as customer_id,
        customers.signup_date,
        activity.first_order_date,
        activity.last_order_date,
        -- the relationship starts at sign-up or at the first order, whichever came first
        case
            when customers.signup_date is null then activity.first_order_date
            when activity.first_order_date is null then customers.signup_date
            when activity.first_order_date < customers.signup_date then activity.first_order_date
            else customers.signup_date
        end as customer_since,
        coalesce(activity.lifetime_orders, 0) as lifetime_orders,
        coalesce(activity.lifetime_returns, 0) as lifetime_returns,
        coalesce(activity.lifetime_net_revenue, 0) as lifetime_revenue,
        customers.email_consent,
        customers.email_hash,
        coalesce(customers.has_email, false) as has_email,
        coalesce(customers.has_phone, false) as has_phone,
        customers.customer_id is not null as in_customer_snapshot

    from customers
    full outer join activity
        on customers.customer_id = activity.customer_id

),

final as (

    select
        customer_id,
        signup_date,
        cast({{ dbt.date_trunc('month', 'first_order_date') }} as date) as acquisition_cohort,
        first_order_date,
        last_order_date,
        customer_since,
        {{ dbt.datediff('customer_since', month_end, 'day') | trim }} as tenure_days,
        lifetime_orders,
        lifetime_returns,
        lifetime_revenue,
        email_consent,
        coalesce(email_consent, false) and has_email as is_contactable,
        email_hash,
        has_email,
        has_phone,
        in_customer_snapshot,
        {{ as_of_month_date(as_of_month) }} as as_of_month

    from joined

)

select * from final
