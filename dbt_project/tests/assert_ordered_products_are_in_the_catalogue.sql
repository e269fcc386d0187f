-- Every product an order line names must be in the product catalogue as of month_end, whenever there
-- is a catalogue at all. Without one (an orders-only input) product data is simply unknown: product
-- columns are NULL and this test passes. Returns the order lines naming an unknown product.

with

orders as (

    select * from {{ ref('fct_orders') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

final as (

    select
        orders.order_id,
        orders.product_id

    from orders

    where
        orders.product_id is not null
        and exists (select 1 from products)
        and not exists (
            select 1 from products
            where products.product_id = orders.product_id
        )

)

select * from final
