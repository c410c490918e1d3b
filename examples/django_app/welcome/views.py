"""POST /signup with email and plan: the member and the welcome job commit together."""

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pgtq.integrations.django import psycopg_connection
from welcome.models import Member
from welcome.tasks import send_welcome_email

PLANS = ("free", "pro")


@csrf_exempt
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email, plan = request.POST["email"], request.POST["plan"]
    try:
        with transaction.atomic():
            member = Member.objects.create(email=email, plan=plan)
            send_welcome_email.options(conn=psycopg_connection()).push(member.pk, email)
            if plan not in PLANS:  # found out after the push: the rollback takes the job too
                raise ValueError(f"unknown plan {plan!r}")
    except (IntegrityError, ValueError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"id": member.pk}, status=201)
