# The images the Nomad jobs run: worker (Prefect server and worker, `crm deploy`), scorer and
# explorer from infra/docker/app.Dockerfile's targets, mlflow from infra/docker/mlflow.Dockerfile.
# Tags are immutable, so a job's image reference names one build.
resource "aws_ecr_repository" "images" {
  for_each             = local.images
  name                 = "${local.name}/${each.key}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecr_lifecycle_policy" "images" {
  for_each   = local.images
  repository = aws_ecr_repository.images[each.key].name

  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 30 most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 30
      }
      action = { type = "expire" }
    }]
  })
}
