-- Order lines placed on or before the end of the as-of month. Money becomes exact decimals so that
-- sums are exact and do not depend on the order in which an engine adds them up.
{%- set as_of_month = var('as_of_month') %}

with

source as (

    select * from {{ source('crm', 'orders') }}

),

renamed as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(order_date as date) as order_date,
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(quantity as {{ dbt.type_bigint() }}) as quantity,
        cast(amount as decimal(18, 2)) as amount

    from source

),

final as (

    select * from renamed
    where order_date <= {{ as_of_month_end(as_of_month) }}

)

select * from final
