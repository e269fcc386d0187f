-- Every planned campaign assignment (test and control) known as of the end of the as-of month, with
-- whether the customer was actually contacted and, once the outcome window has closed, the outcome.
-- The outcome window of a campaign is its delivery month (the response window is the month
-- the campaign is delivered in). Outcomes are counted for control customers exactly as for test
-- customers, so the two groups can be compared.
{%- set as_of_month = build_month() %}

with

campaign_plan as (

    select * from {{ ref('stg_campaigns__campaign_plan') }}

),

contacts as (

    select * from {{ ref('stg_crm__contact_log') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

assignments as (

    select
        *,
        delivery_month as outcome_window_start,
        cast({{ dbt.last_day('delivery_month', 'month') }} as date) as outcome_window_end

    from campaign_plan

),

deliveries as (

    select
        campaign_id,
        customer_id,
        min(contacted_at) as contacted_at,
        -- what the channel reported of the message: 1 when any delivery was opened (clicked), NULL unreported
        max(case when opened then 1 when not opened then 0 end) as opened_flag,
        max(case when clicked then 1 when not clicked then 0 end) as clicked_flag

    from contacts

    group by campaign_id, customer_id

),

window_orders as (

    select
        assignments.campaign_id,
        assignments.customer_id,
        count(case when not orders.is_return then orders.order_id end) as orders_in_window,
        sum(orders.revenue) as revenue_in_window

    from assignments
    inner join orders
        on
            assignments.customer_id = orders.customer_id
            and orders.order_date between assignments.outcome_window_start and assignments.outcome_window_end

    group by assignments.campaign_id, assignments.customer_id

),

final as (

    select
        assignments.campaign_id,
        assignments.customer_id,
        assignments.offer_id,
        assignments.objective,
        assignments.targeting_policy,
        assignments.treatment_group,
        assignments.selection,
        assignments.selection_probability,
        assignments.treatment_probability,
        assignments.expected_incremental_profit,
        assignments.designed_in_month,
        assignments.delivery_month,
        -- NULL until the delivery month has begun: not yet known
        case
            when assignments.delivery_month <= {{ as_of_month_date(as_of_month) }}
                then deliveries.customer_id is not null
        end as was_contacted,
        deliveries.contacted_at,
        deliveries.opened_flag = 1 as opened_message,
        deliveries.clicked_flag = 1 as clicked_message,
        assignments.outcome_window_start,
        assignments.outcome_window_end,
        assignments.outcome_window_end <= {{ as_of_month_end(as_of_month) }} as is_outcome_window_closed,
        -- outcomes only once the window has closed: a partial window is not an outcome
        case
            when assignments.outcome_window_end <= {{ as_of_month_end(as_of_month) }}
                then coalesce(window_orders.orders_in_window, 0) > 0
        end as ordered_in_window,
        case
            when assignments.outcome_window_end <= {{ as_of_month_end(as_of_month) }}
                then coalesce(window_orders.orders_in_window, 0)
        end as orders_in_window,
        case
            when assignments.outcome_window_end <= {{ as_of_month_end(as_of_month) }}
                then coalesce(window_orders.revenue_in_window, 0)
        end as revenue_in_window,
        {{ as_of_month_date(as_of_month) }} as as_of_month

    from assignments
    left join deliveries
        on
            assignments.campaign_id = deliveries.campaign_id
            and assignments.customer_id = deliveries.customer_id
    left join window_orders
        on
            assignments.campaign_id = window_orders.campaign_id
            and assignments.customer_id = window_orders.customer_id

)

select * from final
