-- Cohort retention as of the end of the as-of month: for every acquisition cohort (the month of the
-- customers' first order) and every month since, up to the as-of month, how many of the cohort's
-- customers ordered in that month, that share of the cohort, and the cohort's revenue in the month
-- (net of returns). Months without any order appear with zeros: the grid is dense.
{%- set as_of_month = build_month() %}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

month_offsets as (

    -- 0 .. 1199: cohorts up to 100 years old
    select cast(generated_number - 1 as {{ dbt.type_int() }}) as months_since_first_order
    from ({{ dbt.generate_series(1200) }}) as series

),

cohorts as (

    select
        acquisition_cohort,
        count(*) as cohort_size

    from customers

    where acquisition_cohort is not null

    group by acquisition_cohort

),

cohort_months as (

    select
        cohorts.acquisition_cohort,
        cohorts.cohort_size,
        month_offsets.months_since_first_order,
        cast(
            {{ dbt.dateadd('month', 'month_offsets.months_since_first_order', 'cohorts.acquisition_cohort') }}
            as date
        ) as activity_month

    from cohorts
    cross join month_offsets

    where
        month_offsets.months_since_first_order
        <= {{ dbt.datediff('cohorts.acquisition_cohort', as_of_month_date(as_of_month), 'month') }}

),

cohort_orders as (

    select
        customers.acquisition_cohort,
        orders.order_month as activity_month,
        count(distinct case when not orders.is_return then orders.customer_id end) as active_customers,
        count(case when not orders.is_return then orders.order_id end) as orders,
        sum(orders.revenue) as net_revenue

    from orders
    inner join customers
        on orders.customer_id = customers.customer_id

    where
        customers.acquisition_cohort is not null
        and orders.order_date <= {{ as_of_month_end(as_of_month) }}

    group by customers.acquisition_cohort, orders.order_month

),

final as (

    select
        {{ as_of_month_date(as_of_month) }} as as_of_month,
        cohort_months.acquisition_cohort,
        cohort_months.months_since_first_order,
        cohort_months.activity_month,
        cohort_months.cohort_size,
        coalesce(cohort_orders.active_customers, 0) as active_customers,
        {{ fraction('coalesce(cohort_orders.active_customers, 0)', 'cohort_months.cohort_size') }} as retention_share,
        coalesce(cohort_orders.orders, 0) as orders,
        coalesce(cohort_orders.net_revenue, 0) as net_revenue

    from cohort_months
    left join cohort_orders
        on
            cohort_months.acquisition_cohort = cohort_orders.acquisition_cohort
            and cohort_months.activity_month = cohort_orders.activity_month

)

select * from final
