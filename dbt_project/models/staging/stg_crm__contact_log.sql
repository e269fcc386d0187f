-- Delivered campaign contacts up to the end of the as-of month (collected in or before it).
{%- set as_of_month = build_month() %}

with

source as (

    select * from {{ source('crm', 'contact_log') }}

),

renamed as (

    select
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(offer_id as {{ dbt.type_string() }}) as offer_id,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(contacted_at as date) as contacted_at,
        cast(_loaded_month as date) as loaded_month

    from source

),

final as (

    select
        campaign_id,
        customer_id,
        offer_id,
        channel,
        contacted_at

    from renamed

    where
        loaded_month <= {{ as_of_month_date(as_of_month) }}
        and contacted_at <= {{ as_of_month_end(as_of_month) }}

)

select * from final
