{{ config(severity='warn') }}

-- Warns (never blocks) while order lines name a product whose line or unit cost is unknown, e.g. order
-- files with product ids but no catalogue: their margins are NULL and customer_value falls back to
-- ranking revenue. Returns one row per such product, with its order lines and whether a catalogue exists.

with

orders as (

    select * from {{ ref('fct_orders') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

final as (

    select
        orders.product_id,
        count(*) as order_lines,
        (select count(*) from products) as catalogue_products

    from orders

    where
        orders.product_id is not null
        and not orders.has_product_data

    group by orders.product_id

)

select * from final
