-- The product catalogue as of the end of the as-of month: each product's latest delivered version.
{%- set as_of_month = build_month() %}

with

source as (

    select * from {{ source('crm', 'products') }}

),

delivered_by_month_end as (

    select
        *,
        row_number() over (
            partition by product_id
            order by _loaded_month desc
        ) as version_recency

    from source

    where _loaded_month <= {{ as_of_month_end(as_of_month) }}

),

final as (

    select
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(product_line as {{ dbt.type_string() }}) as product_line,
        cast(product_name as {{ dbt.type_string() }}) as product_name,
        cast(unit_price as decimal(18, 4)) as unit_price,
        cast(unit_cost as decimal(18, 4)) as unit_cost

    from delivered_by_month_end

    where version_recency = 1

)

select * from final
