-- Order grain: every order line placed by the end of the as-of month, with its product line, cost and
-- gross margin (revenue - quantity * unit cost).

with

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

orders_with_costs as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date) as order_month,
        orders.product_id,
        products.product_line,
        orders.quantity,
        orders.amount as revenue,
        orders.quantity * products.unit_cost as cost

    from orders
    left join products
        on orders.product_id = products.product_id

),

final as (

    select
        *,
        revenue - cost as margin

    from orders_with_costs

)

select * from final
