-- Order grain: every order line (sale or return) collected by the end of the as-of month, with its
-- product line, cost and gross margin. Returns are signed: a return's revenue, cost and margin are the
-- negatives of a sale's, so that sums over any set of lines are net of returns. Without product data
-- (a plain transaction log, or a product missing from the catalogue) product_line, cost and margin
-- are NULL: unknown, not zero. revenue is the merchandise value (amount); a discount is recorded beside it:
-- a campaign voucher's (discount_code = its offer_id) is that campaign's cost, a promotional code's the
-- shop's standing price.

with

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

offers as (

    select offer_id from {{ ref('offers') }}

),

orders_with_products as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date) as order_month,
        orders.order_type,
        orders.is_return,
        case when orders.is_return then -1 else 1 end as money_sign,
        orders.product_id,
        products.product_line,
        coalesce(products.product_line is not null and products.unit_cost is not null, false) as has_product_data,
        orders.quantity,
        orders.amount,
        orders.discount_code,
        orders.discount_amount,
        orders.order_source,
        offers.offer_id is not null as is_voucher_redemption,
        products.unit_cost

    from orders
    left join products
        on orders.product_id = products.product_id
    left join offers
        on orders.discount_code = offers.offer_id

),

final as (

    select
        order_id,
        customer_id,
        order_date,
        order_month,
        order_type,
        is_return,
        product_id,
        product_line,
        has_product_data,
        quantity,
        money_sign * amount as revenue,
        money_sign * quantity * unit_cost as cost,
        money_sign * (amount - quantity * unit_cost) as margin,
        discount_code,
        discount_amount,
        is_voucher_redemption,
        discount_code is not null and not is_voucher_redemption as is_promotion_order,
        order_source = 'email' as is_email_order

    from orders_with_products

)

select * from final
